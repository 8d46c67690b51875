//! The `inventory` binary as built starts on its own: the loader finds the prebuilt libduckdb it
//! was linked with (build.rs records its directory) without `LD_LIBRARY_PATH`.

use std::process::Command;

#[test]
fn the_built_binary_starts_without_ld_library_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_inventory"))
        .arg("--version")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run the inventory binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("inventory "));
}
