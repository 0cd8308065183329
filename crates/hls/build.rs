//! Declares the `fuzzing` cfg that cargo-fuzz sets, so the fuzzing entry point compiles there
//! while stable builds stay free of unexpected-cfg warnings.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
    println!("cargo::rerun-if-changed=build.rs");
}
