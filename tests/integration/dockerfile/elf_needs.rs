//! What a Linux executable needs from the image it runs in: its DT_NEEDED shared libraries, and
//! whether its symbol table was stripped. Parsed with `object`, no readelf needed.

use object::Endianness;
use object::elf::{DT_NEEDED, FileHeader64, SHT_SYMTAB};
use object::read::elf::{FileHeader, SectionHeader};

/// The shared libraries a distroless `cc` image carries: glibc's (libc, libm, libdl, libpthread,
/// librt and the dynamic loader), libgcc_s and libstdc++. Anything else is missing at run time.
pub fn distroless_cc_provides(soname: &str) -> bool {
    let stem = soname.split(".so").next().unwrap_or(soname);
    matches!(stem, "libc" | "libm" | "libdl" | "libpthread" | "librt" | "libgcc_s" | "libstdc++")
        || stem.starts_with("ld-linux")
}

pub struct ElfFacts {
    pub needed: Vec<String>,
    pub has_symtab: bool,
}

pub fn read(data: &[u8]) -> Result<ElfFacts, String> {
    let err = |e: object::read::Error| format!("not a 64-bit ELF file: {e}");
    let header = FileHeader64::<Endianness>::parse(data).map_err(err)?;
    let endian = header.endian().map_err(err)?;
    let sections = header.sections(endian, data).map_err(err)?;
    let dynamic = sections.dynamic_table(endian, data).map_err(err)?;
    let mut needed = Vec::new();
    for entry in &dynamic {
        if entry.tag == DT_NEEDED {
            let name = dynamic.string(entry).map_err(err)?;
            needed.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    let has_symtab = sections.iter().any(|s| s.sh_type(endian) == SHT_SYMTAB);
    Ok(ElfFacts { needed, has_symtab })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distroless_cc_libraries_and_nothing_else() {
        for ok in ["libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"] {
            assert!(distroless_cc_provides(ok), "{ok}");
        }
        for missing in ["libssl.so.3", "libcrypto.so.3", "libz.so.1", "libcurl.so.4", "libcapi.so"] {
            assert!(!distroless_cc_provides(missing), "{missing}");
        }
    }

    #[test]
    fn reads_the_needed_libraries_of_this_test_binary() {
        // This very test executable is dynamically linked against glibc by the Rust toolchain.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let facts = read(&me).unwrap();
        assert!(facts.needed.iter().any(|n| n == "libc.so.6"), "{:?}", facts.needed);
        assert!(facts.has_symtab, "a test build keeps its symbols");
        assert!(read(b"#!/bin/sh\n").is_err());
    }
}
