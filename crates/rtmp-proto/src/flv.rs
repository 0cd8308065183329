//! Just enough of the FLV tag bodies to run a GOP cache: keyframes and sequence headers.
