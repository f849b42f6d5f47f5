//! A minimal writer for the kernel's initramfs format (cpio "newc", uncompressed: the kernel
//! accepts it as is, so no compressor is needed).

use std::io::{self, Write};

/// One archive entry.
#[derive(Debug)]
enum Entry {
    Dir,
    File { data: Vec<u8>, executable: bool },
    Symlink { target: String },
    CharDev { major: u32, minor: u32 },
}

/// An in-memory newc archive, written in the order entries were added (parents first).
#[derive(Debug, Default)]
pub struct Archive {
    entries: Vec<(String, Entry)>,
}

impl Archive {
    pub fn dir(&mut self, path: &str) {
        self.entries.push((path.to_string(), Entry::Dir));
    }

    pub fn file(&mut self, path: &str, data: Vec<u8>, executable: bool) {
        self.entries
            .push((path.to_string(), Entry::File { data, executable }));
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let target = target.to_string();
        self.entries
            .push((path.to_string(), Entry::Symlink { target }));
    }

    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32) {
        self.entries
            .push((path.to_string(), Entry::CharDev { major, minor }));
    }

    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut offset = 0usize;
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir => (0o040_755, &[], (0, 0)),
                Entry::File { data, executable } => (
                    if *executable { 0o100_755 } else { 0o100_644 },
                    data,
                    (0, 0),
                ),
                Entry::Symlink { target } => (0o120_777, target.as_bytes(), (0, 0)),
                Entry::CharDev { major, minor } => (0o020_600, &[], (*major, *minor)),
            };
            offset += write_header(out, ino, mode, path, data.len(), rdev)?;
            out.write_all(data)?;
            offset += data.len();
            offset += pad(out, offset)?;
        }
        offset += write_header(out, 0, 0, "TRAILER!!!", 0, (0, 0))?;
        pad(out, offset)?;
        Ok(())
    }
}

fn write_header(
    out: &mut impl Write,
    ino: u32,
    mode: u32,
    name: &str,
    size: usize,
    rdev: (u32, u32),
) -> io::Result<usize> {
    let too_big = |_| io::Error::new(io::ErrorKind::InvalidInput, "entry too large for newc");
    let size = u32::try_from(size).map_err(too_big)?;
    let namesize = u32::try_from(name.len() + 1).map_err(too_big)?;
    let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    let mut header = String::from("070701");
    for field in fields {
        header.push_str(&format!("{field:08x}"));
    }
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let written = header.len() + name.len() + 1;
    Ok(written + pad(out, written)?)
}

/// Pad to the next multiple of four bytes, given how many bytes were written so far.
fn pad(out: &mut impl Write, written: usize) -> io::Result<usize> {
    let n = (4 - written % 4) % 4;
    out.write_all(&vec![0u8; n])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_aligned_and_terminated() {
        let mut archive = Archive::default();
        archive.dir("bin");
        archive.file("init", b"#!/bin/sh\n".to_vec(), true);
        archive.symlink("bin/sh", "busybox");
        archive.char_dev("dev/console", 5, 1);
        let mut bytes = Vec::new();
        archive.write(&mut bytes).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        // The first header: ino 1, a directory (040755), name "bin" (namesize 4).
        assert_eq!(&text[6..22], "00000001000041ed");
        assert_eq!(&text[94..102], "00000004");
        // The console device carries major 5, minor 1.
        let console = text.find("dev/console").unwrap();
        let header = &text[console - 110..console];
        assert_eq!(&header[78..94], "0000000500000001");
    }
}
