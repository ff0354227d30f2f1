//! Compiles the protocol definitions under `proto/` with protox (a Rust protobuf compiler), so a
//! build needs no system `protoc`.

const PROTOS: &[&str] = &[
    "sdk/plugin/pb/backend.proto",
    "sdk/logical/version.proto",
    "sdk/helper/pluginutil/multiplexing.proto",
    "plugin/grpc_broker.proto",
    "plugin/grpc_controller.proto",
    "plugin/grpc_stdio.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    // Clients run on the plugin's own channel to the host, never on tonic's transport.
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
