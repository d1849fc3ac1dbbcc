//! Prints what launchwatch's static binary inspection sees in a file:
//! `cargo run -p launchwatch-tables --example inspect -- FILE`.

fn main() {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        match launchwatch_tables::binary::inspect(&data) {
            Ok(b) => {
                println!("{path}: {:?}", b.format);
                for s in &b.slices {
                    println!("  slice {} error={:?}", s.arch, s.error);
                    println!("    libraries: {:?}", s.libraries);
                    println!("    imports: {}", s.imports.len());
                    println!("    signature: {:?}", s.signature);
                }
                println!(
                    "  crypto apis: {:?}",
                    launchwatch_tables::binary::crypto_apis(&b)
                );
                println!(
                    "  crypto libraries: {:?}",
                    launchwatch_tables::binary::crypto_libraries(&b)
                );
            }
            Err(e) => println!("{path}: error {e}"),
        }
    }
}
