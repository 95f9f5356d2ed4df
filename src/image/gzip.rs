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
//! the SHA-256 of the uncompressed bytes (the layer's diff_id) is computed on the way. Blocks go
//! to a pool of compressing threads as soon as they are full, so that reading files, writing
//! the tar and hashing (on the caller's thread) overlap with compression instead of taking
//! turns with it. Memory is bounded by a few blocks per thread in flight, whatever the layer's
//! size.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};
use sha2::{Digest, Sha256};

/// The size of one independently compressed block.
pub const BLOCK: usize = 256 << 10;
/// How much of the previous block primes the next one (deflate's window).
const DICTIONARY: usize = 32 << 10;
/// Blocks per thread in flight (sent, not written yet).
const BLOCKS_PER_THREAD: usize = 4;
/// The gzip header: no name, mtime 0, unknown OS. Two builds of one tree give the same bytes.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Byte entropy (bits per byte) from which a block is stored rather than deflated.
const STORE_ENTROPY: f64 = 7.95;

/// A gzip writer compressing on several threads; see the module documentation.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: Compression,
    block: Vec<u8>,
    /// The last bytes of the block before `block`.
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    sha: Sha256,
    size: u64,
    started: bool,
    pool: Pool,
    /// The number the next block sent gets.
    sent: u64,
    /// The number of the next block to write.
    next: u64,
    /// Compressed blocks that came back before the ones ahead of them.
    waiting: BTreeMap<u64, Vec<u8>>,
    /// How many blocks may be sent and not yet written.
    in_flight: usize,
}

/// One block to compress.
struct Job {
    number: u64,
    data: Vec<u8>,
    dictionary: Vec<u8>,
    final_block: bool,
    level: Compression,
}

/// The compressing threads: they take jobs from one queue and answer on another.
struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<(u64, io::Result<Vec<u8>>)>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (answer, done) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let (queue, answer) = (queue.clone(), answer.clone());
                std::thread::spawn(move || loop {
                    // The lock is held only to take a job, never while compressing.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let compressed =
                        compress_block(&job.data, &job.dictionary, job.final_block, job.level);
                    if answer.send((job.number, compressed)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            done,
            workers,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the workers once they finish their job.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
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
        let threads = threads.max(1);
        ParallelGzip {
            out,
            level,
            block: Vec::with_capacity(BLOCK),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            sha: Sha256::new(),
            size: 0,
            started: false,
            pool: Pool::new(threads),
            sent: 0,
            next: 0,
            waiting: BTreeMap::new(),
            in_flight: threads * BLOCKS_PER_THREAD,
        }
    }

    /// Compresses what is left, writes the trailer and returns the writer with what went in.
    pub fn finish(mut self) -> io::Result<(W, Finished)> {
        self.send_block(true)?;
        self.write_ready(0)?;
        let crc = self.crc.clone().finalize();
        let size = self.size;
        let diff_id = format!("sha256:{}", hex::encode(self.sha.clone().finalize()));
        let mut out = self.into_out();
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&(size as u32).to_le_bytes())?;
        out.flush()?;
        Ok((out, Finished { diff_id, size }))
    }

    /// The writer, once the pool has stopped.
    fn into_out(self) -> W {
        let ParallelGzip { out, pool, .. } = self;
        drop(pool);
        out
    }

    /// Sends the current block to the pool, primed with the end of the one before.
    fn send_block(&mut self, final_block: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let tail = data[data.len().saturating_sub(DICTIONARY)..].to_vec();
        let job = Job {
            number: self.sent,
            dictionary: std::mem::replace(&mut self.dictionary, tail),
            data,
            final_block,
            level: self.level,
        };
        let jobs = self.pool.jobs.as_ref().ok_or_else(pool_gone)?;
        jobs.send(job).map_err(|_| pool_gone())?;
        self.sent += 1;
        self.write_ready(self.in_flight)
    }

    /// Writes compressed blocks in order, waiting for them until at most `allowed` blocks are
    /// in flight.
    fn write_ready(&mut self, allowed: usize) -> io::Result<()> {
        if !self.started {
            self.out.write_all(&HEADER)?;
            self.started = true;
        }
        loop {
            while let Some(block) = self.waiting.remove(&self.next) {
                self.out.write_all(&block)?;
                self.next += 1;
            }
            let in_flight = (self.sent - self.next) as usize;
            let answer = if in_flight > allowed {
                self.pool.done.recv().map_err(|_| pool_gone())?
            } else {
                match self.pool.done.try_recv() {
                    Ok(answer) => answer,
                    Err(_) => return Ok(()),
                }
            };
            let (number, compressed) = answer;
            self.waiting.insert(number, compressed?);
        }
    }
}

fn pool_gone() -> io::Error {
    io::Error::other("a compression thread stopped")
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
            self.send_block(false)?;
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
