//! The process allocator of the `inventory` binary and of the benchmarks that measure it:
//! mimalloc, with a longer purge delay than its default.
//!
//! Each binary declares `#[global_allocator] static GLOBAL: inventory_allocator::MiMalloc =
//! inventory_allocator::MiMalloc;` and calls [`configure`] first thing in `main`.
//!
//! **Purge delay.** mimalloc 3 returns freed pages to the kernel 1 s after they were freed; the
//! projector's writer frees and reallocates hundreds of MiB of Arrow buffers, row maps and
//! copied documents per transaction, so with that default every reuse of those pages after a
//! second costs a page fault and the kernel's zeroing of the page. [`PURGE_DELAY_MS`] keeps
//! freed pages for 10 s instead: the replay ran 6 % faster on a quiet machine and about 20 %
//! faster under other builds' load (BENCHMARKS.md, "Projector replay"), while a server that has gone quiet still gives the memory back seconds later.
//! `MIMALLOC_PURGE_DELAY` in the environment overrides it (milliseconds; `-1` never purges).
//! [`release_free_memory`] gives the memory back at once where a burst ends.

pub use mimalloc::MiMalloc;

/// How long mimalloc keeps freed pages before returning them to the kernel (milliseconds).
pub const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Applies the settings above unless the environment sets them (`MIMALLOC_PURGE_DELAY`).
/// Idempotent; call it at the start of `main`.
pub fn configure() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set_default` only stores a value in mimalloc's static option table
    // (bounds-checked by mimalloc) and only when the environment did not set that option; it
    // takes no pointers and may be called at any time from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// Returns to the kernel now the memory mimalloc holds freed (what the purge delay would keep for
/// up to [`PURGE_DELAY_MS`]): for the end of a burst after which the process should be smaller,
/// such as the projector's catch-up at start, which frees hundreds of MiB of buffers in its last
/// seconds. Costs a few milliseconds; a process whose allocator is not mimalloc loses nothing.
pub fn release_free_memory() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_collect` takes no pointers; it may be called at any time from any thread.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (include/mimalloc.h; libmimalloc-sys 0.1
/// does not name it). The test checks that this index holds mimalloc's 1,000 ms default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The purge delay in force (milliseconds).
pub fn purge_delay_ms() -> std::ffi::c_long {
    #[allow(unsafe_code)]
    // SAFETY: reads mimalloc's static option table; no pointers.
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_sets_the_purge_delay_unless_the_environment_did() {
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(v) => {
                configure();
                assert_eq!(purge_delay_ms().to_string(), v.trim());
            }
            Err(_) => {
                // mimalloc 3's own default: the index is that of the purge delay.
                assert_eq!(purge_delay_ms(), 1_000);
                configure();
                assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
            }
        }
    }
}
