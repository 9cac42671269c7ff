//! Prints the heredocs the line-level parser attaches to each instruction,
//! one per line (`index name expand chomp fd content`, strings Go-quoted),
//! for comparing with BuildKit: `cargo run -p kiln-parser --example raw_heredocs -- FILE`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: raw_heredocs FILE");
        std::process::exit(2);
    };
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("cannot read {path}");
        std::process::exit(1);
    };
    let parsed = kiln_parser::decode(&bytes, &path).and_then(|t| kiln_parser::parse_raw(&t, &path));
    let Ok(raw) = parsed else {
        println!("ERROR");
        return;
    };
    for (i, ins) in raw.instructions.iter().enumerate() {
        for h in &ins.heredocs {
            println!(
                "{i} {} {} {} {} {}",
                kiln_parser::quote::go_quote(&h.name),
                h.expand,
                h.chomp,
                h.file_descriptor,
                kiln_parser::quote::go_quote(&h.content)
            );
        }
    }
}
