//! Generates the gRPC service's Rust code from the project's .proto (see
//! Cargo.toml): `protogen PROTO_DIR OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [proto_dir, out_dir] = args.as_slice() else {
        return Err("usage: protogen PROTO_DIR OUT_DIR".into());
    };
    let proto = format!("{proto_dir}/inference.proto");
    let descriptors = protox::compile([&proto], [proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out_dir)
        .compile_fds(descriptors)?;
    Ok(())
}
