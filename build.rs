fn main() {
    // Only the Node binding links against N-API symbols; the plain-Rust core
    // (used by `cargo test`) must not ask for them.
    if std::env::var_os("CARGO_FEATURE_NAPI").is_some() {
        napi_build::setup();
    }
}
