//! The checked-in generated code is what `tonic-prost-build` makes of the vendored proto.
//! Needs `protoc` (Debian's `protobuf-compiler`; `scripts/test.sh` installs it and sets
//! `GRAPHSCALE_REQUIRE_PROTOC=1`, so that a missing one fails there instead of skipping).
//! `GRAPHSCALE_REGENERATE=1` writes the new code over the checked-in file.

use std::path::Path;

#[test]
fn the_generated_code_matches_the_proto() {
    let have_protoc = std::env::var_os("PROTOC").is_some()
        || std::process::Command::new("protoc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have_protoc {
        assert!(
            std::env::var_os("GRAPHSCALE_REQUIRE_PROTOC").is_none(),
            "protoc is required (GRAPHSCALE_REQUIRE_PROTOC is set) but not found"
        );
        eprintln!("skipped: no protoc (install Debian's protobuf-compiler)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .out_dir(out.path())
        .compile_protos(
            &[root.join("proto/externalscaler.proto")],
            &[root.join("proto")],
        )
        .expect("protoc compiles the vendored proto");
    let fresh = std::fs::read_to_string(out.path().join("externalscaler.rs")).unwrap();
    let checked_in_path = root.join("src/generated/externalscaler.rs");
    let checked_in = std::fs::read_to_string(&checked_in_path).unwrap();
    if fresh != checked_in && std::env::var_os("GRAPHSCALE_REGENERATE").is_some() {
        std::fs::write(&checked_in_path, &fresh).unwrap();
        return;
    }
    assert!(
        fresh == checked_in,
        "src/generated/externalscaler.rs is not what the proto generates: run \
         GRAPHSCALE_REGENERATE=1 cargo test -p graphscale-keda --test codegen"
    );
}
