//! Records where the prebuilt libduckdb was linked from (`DUCKDB_LIB_DIR`, set by `make` and by
//! `.cargo/config.toml`) as the `inventory` binary's run-time search path, so the binary as built
//! starts without `LD_LIBRARY_PATH`. A binary built with `--features bundled` carries DuckDB
//! inside it and needs neither.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    let unix = std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f == "unix");
    if let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR").filter(|d| !d.is_empty()) {
        if unix && std::env::var_os("CARGO_FEATURE_BUNDLED").is_none() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.to_string_lossy());
        }
    }
}
