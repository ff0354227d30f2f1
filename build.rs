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
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
