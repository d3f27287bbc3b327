//! Settings for the allocator the `civic` binary runs with (mimalloc, declared in
//! `main.rs`; the benchmarks declare the same).
//!
//! Measured with the intake load generator (BENCHMARKS.md): with mimalloc's defaults,
//! memory a request freed is handed back to the OS a second later and faulted in again, zeroed,
//! by the next requests; about a tenth of the server's CPU went to that. Never purging keeps
//! freed memory for reuse, so the process stays at its peak footprint instead.

/// mimalloc's `mi_option_purge_delay` (its position in the option enum of the mimalloc v3
/// that `libmimalloc-sys` 0.1.49 builds; the crate names no constant for it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings; call first thing in `main`. Harmless under another allocator.
pub fn tune() {
    // SAFETY: setting an option is a plain store into mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_is_the_option_we_set() {
        // SAFETY (all three): reading and setting options.
        let before = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        // `purge_delay`'s default (ms) in this mimalloc's options.c: the position is right.
        assert!(before == 1000 || before == -1, "option 15 reads {before}");
        super::tune();
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) },
            -1
        );
    }
}
