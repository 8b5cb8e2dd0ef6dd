//! With the `onnx` feature, generates the ONNX messages from ONNX's own
//! schema, `proto/onnx.proto`, with rust-protobuf's pure-Rust parser (no
//! `protoc` needed).

fn main() {
    #[cfg(feature = "onnx")]
    {
        println!("cargo:rerun-if-changed=proto/onnx.proto");
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        protobuf_codegen::Codegen::new()
            .pure()
            .include("proto")
            .input("proto/onnx.proto")
            .out_dir(&out)
            .run_from_script();
    }
}
