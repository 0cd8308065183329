//! Shared helpers for Lifeline's tests. Everything a helper starts is undone on drop, also when
//! the test fails.
