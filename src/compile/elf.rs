//! Reading a compiled bootstrap's ELF header: architecture, linkage and required glibc.

use std::path::Path;

use object::elf::FileHeader64;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadCache, ReadRef};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::target::{Arch, GlibcVersion};

/// What the ELF header says about an executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ElfInfo {
    /// The machine, if it is one Lambda runs.
    pub arch: Option<Arch>,
    /// The raw `e_machine` value, for messages about foreign machines.
    pub machine: u16,
    /// The dynamic loader (`PT_INTERP`); `None` for a static executable.
    pub interpreter: Option<String>,
    /// The newest `GLIBC_x.y` symbol version the executable needs, if any.
    pub max_glibc: Option<GlibcVersion>,
}

impl ElfInfo {
    /// Whether the executable runs without a dynamic loader.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none()
    }
}

/// Reads an executable's ELF header. Only the headers and the version sections are read, not
/// the whole file: a bootstrap can be tens of megabytes, and this runs on every build.
pub fn inspect(path: &Path) -> Result<ElfInfo> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("could not read", path, e))?;
    let cache = ReadCache::new(file);
    inspect_data(&cache).map_err(|message| Error::BadBinary {
        path: path.to_path_buf(),
        message,
        help: "Lambda needs a 64-bit Linux ELF executable; check the --target cargo built".into(),
    })
}

/// Reads ELF facts from bytes; the error is a plain message.
pub fn inspect_bytes(data: &[u8]) -> std::result::Result<ElfInfo, String> {
    inspect_data(data)
}

/// Reads ELF facts from the file header, the program headers and the `.gnu.version_r`
/// section (with its string table), without parsing the symbol tables.
fn inspect_data<'data, R: ReadRef<'data>>(data: R) -> std::result::Result<ElfInfo, String> {
    let header = FileHeader64::<Endianness>::parse(data)
        .map_err(|e| format!("not a 64-bit ELF file ({e})"))?;
    let endian = header
        .endian()
        .map_err(|e| format!("not a 64-bit ELF file ({e})"))?;
    let machine = header.e_machine(endian).0;
    let arch = match object::elf::Machine(machine) {
        object::elf::EM_X86_64 => Some(Arch::X86_64),
        object::elf::EM_AARCH64 => Some(Arch::Arm64),
        _ => None,
    };
    let mut interpreter = None;
    let program_headers = header
        .program_headers(endian, data)
        .map_err(|e| format!("bad program headers: {e}"))?;
    for program_header in program_headers {
        if program_header.p_type(endian) == object::elf::PT_INTERP {
            let bytes = program_header
                .data(endian, data)
                .map_err(|()| "the PT_INTERP segment is out of bounds".to_string())?;
            interpreter = Some(
                String::from_utf8_lossy(bytes)
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
    }
    let mut max_glibc: Option<GlibcVersion> = None;
    let sections = header
        .sections(endian, data)
        .map_err(|e| format!("bad section headers: {e}"))?;
    let verneed = sections
        .gnu_verneed(endian, data)
        .map_err(|e| format!("bad version section: {e}"))?;
    if let Some((mut needs, link)) = verneed {
        let strings = sections
            .strings(endian, data, link)
            .map_err(|e| format!("bad string table: {e}"))?;
        while let Some((_need, mut auxes)) = needs.next().map_err(|e| e.to_string())? {
            while let Some(aux) = auxes.next().map_err(|e| e.to_string())? {
                let name = aux.name(endian, strings).map_err(|e| e.to_string())?;
                let name = String::from_utf8_lossy(name);
                if name.starts_with("GLIBC_") {
                    if let Some(v) = GlibcVersion::parse(&name) {
                        max_glibc = max_glibc.max(Some(v));
                    }
                }
            }
        }
    }
    Ok(ElfInfo {
        arch,
        machine,
        interpreter,
        max_glibc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself is a host-arch, dynamically linked glibc executable.
    #[test]
    fn reads_the_running_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let info = inspect(&exe).unwrap();
        assert_eq!(info.arch, Arch::host());
        if cfg!(target_env = "gnu") {
            assert!(!info.is_static());
            let v = info
                .max_glibc
                .expect("a glibc build needs some GLIBC_ version");
            assert!(v >= GlibcVersion { major: 2, minor: 2 }, "{v}");
        }
    }

    /// A file cut after its ELF header: the headers it points to are missing, which is an
    /// error (from the file as from bytes), not a panic or a guess.
    #[test]
    fn a_truncated_executable_is_an_error() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut");
        std::fs::write(&cut, &exe[..64]).unwrap();
        let err = inspect(&cut).unwrap_err().to_string();
        assert!(err.contains("headers"), "{err}");
        assert!(inspect_bytes(&exe[..64]).is_err());
    }

    #[test]
    fn rejects_non_elf_data() {
        let err = inspect_bytes(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(err.contains("not a 64-bit ELF"), "{err}");
    }
}
