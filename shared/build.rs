//! Embeds `migrations/NNNN_name.sql` into the library, numbered from 1 without gaps, so adding a
//! migration is adding a file.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());

    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("migrations/ is readable") {
        let path = entry.expect("migrations/ entry").path();
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = file_name.strip_suffix(".sql") else {
            continue;
        };
        let (number, name) = stem
            .split_once('_')
            .unwrap_or_else(|| panic!("{file_name}: migrations are named NNNN_name.sql"));
        assert!(
            number.len() == 4 && number.bytes().all(|b| b.is_ascii_digit()),
            "{file_name}: migrations are named NNNN_name.sql"
        );
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{file_name}: the name part is lower_snake_case"
        );
        println!("cargo:rerun-if-changed={}", path.display());
        migrations.push((number.parse::<i64>().unwrap(), name.to_owned(), path));
    }
    migrations.sort();
    for (index, (version, name, _)) in migrations.iter().enumerate() {
        assert_eq!(
            *version,
            index as i64 + 1,
            "migration {version:04}_{name}: versions must run from 0001 without gaps or duplicates"
        );
    }

    let mut code =
        String::from("/// Every migration, in order.\npub static MIGRATIONS: &[Migration] = &[\n");
    for (version, name, path) in &migrations {
        let path = path.canonicalize().unwrap();
        writeln!(
            code,
            "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({:?}) }},",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(out, code).unwrap();
}
