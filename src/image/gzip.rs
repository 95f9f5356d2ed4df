//! Gzip for layers, on every core, with the same bytes whatever the core count (pigz's scheme).
//!
//! The input is cut into blocks of [`BLOCK`] bytes. Each block is deflated on its own, primed
//! with the last 32 KiB of the block before it as a dictionary, and ends with a sync flush so
//! that it stops on a byte boundary; the blocks are concatenated into one raw deflate stream
//! in one gzip member, whose CRC-32 and size cover the whole input. Block boundaries depend only
//! on the input, never on the number of threads, so 1 or 16 cores give the same digest.
//!
//! A block that deflate cannot shrink (its bytes' entropy is near 8 bits: compressed or random
//! data) is stored as it is instead: deflating it would cost time for nothing.
//!
//! [`ParallelGzip`] is a `Write`: a tar streams into it, the compressed bytes stream out, and
//! the SHA-256 of the uncompressed bytes (the layer's diff_id) is computed on the way. Memory is
//! bounded by a batch of blocks per thread, whatever the layer's size.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};
use sha2::{Digest, Sha256};

/// The size of one independently compressed block.
pub const BLOCK: usize = 256 << 10;
/// How much of the previous block primes the next one (deflate's window).
const DICTIONARY: usize = 32 << 10;
/// Blocks per thread compressed in one batch.
const BLOCKS_PER_THREAD: usize = 4;
/// The gzip header: no name, mtime 0, unknown OS. Two builds of one tree give the same bytes.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Byte entropy (bits per byte) from which a block is stored rather than deflated.
const STORE_ENTROPY: f64 = 7.95;

/// A gzip writer compressing on several threads; see the module documentation.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: Compression,
    threads: usize,
    block: Vec<u8>,
    batch: Vec<Vec<u8>>,
    /// The last bytes of the block before the current batch.
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    sha: Sha256,
    size: u64,
    started: bool,
}

/// What a finished gzip stream was made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `sha256:` of the uncompressed bytes.
    pub diff_id: String,
    /// How many uncompressed bytes.
    pub size: u64,
}

impl<W: Write> ParallelGzip<W> {
    /// Compresses into `out` at `level` on `threads` threads (at least one).
    pub fn new(out: W, level: Compression, threads: usize) -> ParallelGzip<W> {
        ParallelGzip {
            out,
            level,
            threads: threads.max(1),
            block: Vec::with_capacity(BLOCK),
            batch: Vec::new(),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            sha: Sha256::new(),
            size: 0,
            started: false,
        }
    }

    /// Compresses what is left, writes the trailer and returns the writer with what went in.
    pub fn finish(mut self) -> io::Result<(W, Finished)> {
        let last = std::mem::take(&mut self.block);
        self.batch.push(last);
        self.compress_batch(true)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.size as u32).to_le_bytes())?;
        self.out.flush()?;
        let finished = Finished {
            diff_id: format!("sha256:{}", hex::encode(self.sha.clone().finalize())),
            size: self.size,
        };
        Ok((self.out, finished))
    }

    /// Compresses the batch on the threads, writing the blocks in order.
    fn compress_batch(&mut self, last: bool) -> io::Result<()> {
        if !self.started {
            self.out.write_all(&HEADER)?;
            self.started = true;
        }
        let blocks = std::mem::take(&mut self.batch);
        let count = blocks.len();
        let mut dictionaries: Vec<&[u8]> = Vec::with_capacity(count);
        for i in 0..count {
            let previous = if i == 0 {
                self.dictionary.as_slice()
            } else {
                blocks[i - 1].as_slice()
            };
            dictionaries.push(&previous[previous.len().saturating_sub(DICTIONARY)..]);
        }
        let level = self.level;
        let per_thread = count.div_ceil(self.threads).max(1);
        let compressed: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..count)
                .step_by(per_thread)
                .map(|start| {
                    let end = (start + per_thread).min(count);
                    let (blocks, dictionaries) = (&blocks, &dictionaries);
                    scope.spawn(move || {
                        (start..end)
                            .map(|i| {
                                let final_block = last && i + 1 == count;
                                compress_block(&blocks[i], dictionaries[i], final_block, level)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| {
                    w.join().unwrap_or_else(|_| {
                        vec![Err(io::Error::other("a compression thread panicked"))]
                    })
                })
                .collect()
        });
        for block in compressed {
            self.out.write_all(&block?)?;
        }
        if let Some(previous) = blocks.last() {
            self.dictionary = previous[previous.len().saturating_sub(DICTIONARY)..].to_vec();
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = buf.len().min(BLOCK - self.block.len());
        let data = &buf[..take];
        self.block.extend_from_slice(data);
        self.crc.update(data);
        self.sha.update(data);
        self.size += take as u64;
        if self.block.len() == BLOCK {
            let full = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
            self.batch.push(full);
            if self.batch.len() >= self.threads * BLOCKS_PER_THREAD {
                self.compress_batch(false)?;
            }
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are only cut at BLOCK boundaries, so that the bytes never depend on when
        // the caller flushes.
        Ok(())
    }
}

/// Deflates one block (raw deflate, primed with `dictionary`), ending on a byte boundary: with
/// a sync flush, or as the stream's final block. Incompressible blocks are stored.
fn compress_block(
    data: &[u8],
    dictionary: &[u8],
    final_block: bool,
    level: Compression,
) -> io::Result<Vec<u8>> {
    if entropy(data) >= STORE_ENTROPY {
        return Ok(stored(data, final_block));
    }
    let mut compress = Compress::new(level, false);
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if final_block {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let status = compress
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done = compress.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete when all input is in and there was room to spare.
            Status::Ok | Status::BufError if !final_block && done && out.capacity() > out.len() => {
                break
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `data` as stored deflate blocks (at most 65535 bytes each); the last one is final when
/// `final_block`. An empty final block is one empty stored block.
fn stored(data: &[u8], final_block: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 5);
    let mut chunks: Vec<&[u8]> = data.chunks(65535).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let count = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let len = chunk.len() as u16;
        out.push(u8::from(final_block && i + 1 == count));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The Shannon entropy of the bytes, in bits per byte.
fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Bytes that compress like a binary: text, repeats and some noise.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(3) {
                out.extend_from_slice(b"fn main() { println!(\"hello, lambda\"); } ");
            } else {
                out.extend_from_slice(&state.to_le_bytes()[..(state % 8) as usize]);
            }
        }
        out.truncate(len);
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 33) as u8
            })
            .collect()
    }

    fn gzip(data: &[u8], threads: usize, writes: usize) -> (Vec<u8>, Finished) {
        let mut gz = ParallelGzip::new(Vec::new(), Compression::default(), threads);
        for piece in data.chunks(writes.max(1)) {
            gz.write_all(piece).unwrap();
        }
        gz.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_same_bytes_on_any_number_of_threads_and_writes() {
        let data = [sample(3 * BLOCK + 1234), noise(BLOCK / 2), sample(BLOCK)].concat();
        let (one, finished) = gzip(&data, 1, 1 << 20);
        for (threads, writes) in [(2, 4096), (3, 7), (16, BLOCK)] {
            assert_eq!(gzip(&data, threads, writes).0, one, "{threads} threads");
        }
        assert_eq!(gunzip(&one), data);
        assert_eq!(finished.size, data.len() as u64);
        assert_eq!(finished.diff_id, crate::oci::sha256_digest(&data));
    }

    #[test]
    fn gzip_itself_reads_the_stream() {
        let data = [sample(2 * BLOCK + 77), noise(3000)].concat();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer.gz");
        std::fs::write(&file, gzip(&data, 2, 5000).0).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&file)
            .output()
            .expect("gzip runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn empty_small_and_block_sized_inputs_round_trip() {
        for len in [0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK] {
            let data = sample(len);
            assert_eq!(gunzip(&gzip(&data, 2, 1000).0), data, "{len} bytes");
        }
    }

    #[test]
    fn incompressible_blocks_are_stored_and_still_decompress() {
        let data = noise(2 * BLOCK + 10);
        let (gz, _) = gzip(&data, 2, 1 << 16);
        // Stored: the input plus 5 bytes per 64 KiB and the gzip framing, no more.
        assert!(
            gz.len() < data.len() + data.len() / 65535 * 5 + 64,
            "{}",
            gz.len()
        );
        assert_eq!(gunzip(&gz), data);
    }

    #[test]
    fn parallel_layers_stay_within_two_percent_of_one_stream() {
        let data = sample(16 * BLOCK);
        let (parallel, _) = gzip(&data, 2, 1 << 16);
        let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        one.write_all(&data).unwrap();
        let one = one.finish().unwrap();
        let growth = parallel.len() as f64 / one.len() as f64 - 1.0;
        assert!(growth < 0.02, "{:.2}% bigger", growth * 100.0);
    }
}
