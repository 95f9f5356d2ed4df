//! Reading a layer's tar entries the way container runtimes read them (containerd, and Docker,
//! whose archive code does the same), for the rootfs unpacker and `check` alike: where an
//! entry lands ([`entry_path`]) and where the archive ends ([`LayerTar`]).
//!
//! Builders differ in what they write: umoci and several others write absolute member names
//! (`/etc/x`) and an entry for the root directory itself (`/`, `./` or an empty name), and
//! umoci stops its layers right after the last entry's data, without the padding and the two
//! zero blocks that close a tar archive. Runtimes accept all of these, and so does this reader;
//! what could reach outside the root filesystem is still refused by the callers.

use std::io::{self, Read};
use std::path::{Component, Path};

/// The normal components of an entry's path (a hard link's target too) inside the root
/// filesystem, cleaned the way containerd cleans it: a leading `/` or `./` and `.` components
/// are dropped and `..` goes up one component. Empty for the root directory itself (`/`, `./`,
/// an empty name). A `..` that would leave the root, and a name that is not UTF-8, are errors.
pub fn entry_path(path: &Path) -> std::result::Result<Vec<String>, &'static str> {
    let mut out: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => match name.to_str() {
                Some(name) => out.push(name.to_string()),
                None => return Err("the path is not UTF-8"),
            },
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err("its `..` leads outside the root filesystem");
                }
            }
            Component::Prefix(_) => return Err("the path has a drive prefix"),
        }
    }
    Ok(out)
}

/// The size of a tar block.
const BLOCK: u64 = 512;

/// A layer's uncompressed tar stream, ending the way Go's `archive/tar` (containerd's reader)
/// ends one: when the stream stops after an entry's data, the padding to a full block and the
/// two zero blocks that close the archive are supplied. Whether an entry's data itself was cut
/// short is for the caller to ask, with [`LayerTar::holds`], once it has read the entries.
pub struct LayerTar<R> {
    inner: R,
    /// Bytes read from `inner`.
    read: u64,
    /// Where `inner` ended, once it has.
    end: Option<u64>,
    /// Zeros still to supply after the end.
    zeros: u64,
}

impl<R: Read> LayerTar<R> {
    /// Reads the tar stream `inner`.
    pub fn new(inner: R) -> LayerTar<R> {
        LayerTar {
            inner,
            read: 0,
            end: None,
            zeros: 0,
        }
    }

    /// Whether the stream really held its first `len` bytes (not supplied zeros): an entry's
    /// data ends at `Entry::raw_file_position() + header size`.
    pub fn holds(&self, len: u64) -> bool {
        self.end.is_none_or(|end| len <= end)
    }

    /// The bytes the stream really held so far, supplied zeros left out.
    pub fn real_len(&self) -> u64 {
        self.end.unwrap_or(self.read)
    }
}

impl<R: Read> Read for LayerTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.end.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 {
                self.read += n as u64;
                return Ok(n);
            }
            self.end = Some(self.read);
            self.zeros = (BLOCK - self.read % BLOCK) % BLOCK + 2 * BLOCK;
        }
        let n = buf
            .len()
            .min(usize::try_from(self.zeros).unwrap_or(usize::MAX));
        buf[..n].fill(0);
        self.zeros -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> std::result::Result<Vec<String>, &'static str> {
        entry_path(Path::new(path))
    }

    #[test]
    fn entry_paths_are_cleaned_like_containerd_does() {
        assert_eq!(parts("./var/task/x").unwrap(), ["var", "task", "x"]);
        assert_eq!(parts("/var/task/x").unwrap(), ["var", "task", "x"]);
        assert_eq!(parts("var//task/./x/").unwrap(), ["var", "task", "x"]);
        assert_eq!(parts("var/runtime/../task").unwrap(), ["var", "task"]);
        for root in ["/", "./", ".", "", "var/.."] {
            assert!(parts(root).unwrap().is_empty(), "{root:?}");
        }
    }

    #[test]
    fn entry_paths_never_leave_the_root() {
        for escape in ["..", "../x", "var/../../x", "/../etc/passwd", "./../x"] {
            assert!(parts(escape).is_err(), "{escape:?}");
        }
    }

    fn read_all(data: &[u8]) -> (Vec<u8>, LayerTar<&[u8]>) {
        let mut tar = LayerTar::new(data);
        let mut out = Vec::new();
        tar.read_to_end(&mut out).unwrap();
        (out, tar)
    }

    #[test]
    fn a_stream_cut_after_an_entry_is_closed_with_zero_blocks() {
        let (out, tar) = read_all(&[7u8; 515]);
        assert_eq!(out.len(), 1024 + 1024);
        assert!(out[..515].iter().all(|b| *b == 7));
        assert!(out[515..].iter().all(|b| *b == 0));
        assert_eq!(tar.real_len(), 515);
        assert!(tar.holds(515) && !tar.holds(516));

        // A complete stream gets the closing blocks anyway; a reader stops at the first.
        let (out, tar) = read_all(&[1u8; 1024]);
        assert_eq!(out.len(), 2048);
        assert!(tar.holds(1024));
    }
}
