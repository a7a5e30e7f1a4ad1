//! The proxy's global allocator: mimalloc, asked the way its C API is fastest.
//!
//! Proxying allocates small short-lived buffers per request (header maps, request parts, hyper's
//! read and write buffers), which mimalloc's thread-local free lists serve faster than glibc's
//! malloc. The `mimalloc` crate's own `MiMalloc` passes every allocation through
//! `mi_malloc_aligned`, and mimalloc (v2 and v3) keeps that call on its fast path only for
//! blocks up to 1 KiB or of a power-of-two size: a 1.2 KiB header map took the over-allocating
//! aligned path, ~220 instructions instead of ~30, two or three times per cache hit
//! (callgrind, proxy/README.md). Every mimalloc block of 16 bytes or more is 16-byte aligned
//! (`MI_MAX_ALIGN_SIZE`) and every smaller one 8-byte aligned, so the alignments Rust asks for
//! almost always need nothing but plain `mi_malloc`; the same rule as std's `System` allocator
//! picks it. The same change is proposed upstream (purpleprotocol/mimalloc_rust#170).
//!
//! The C library is mimalloc's v2 line, which its authors call the stable one, not v3, the
//! default of `libmimalloc-sys`. v3 gives up pages that fill and reclaims them when their blocks
//! are freed; with a proxy's churn of short-lived buffers that ran on every request: 1 600
//! allocator instructions per pass-through against v2's 1 270, and no hit was faster for it.

#![expect(
    unsafe_code,
    reason = "a global allocator is an unsafe trait over C functions; this module is the only unsafe code in the workspace"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block of at least this many bytes has.
const MAX_PLAIN_ALIGN: usize = 16;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

/// Whether a block of `size` bytes from plain `mi_malloc` is aligned to `align`.
fn plain_fits(size: usize, align: usize) -> bool {
    align <= MAX_PLAIN_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc, plain or aligned as `plain_fits` says it may, and
// goes back to `mi_free`, which takes both kinds.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions accept any size and power-of-two alignment.
        unsafe {
            if plain_fits(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain_fits(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; a plain reallocation keeps the
        // guarantee `plain_fits` relies on for the new size.
        unsafe {
            if plain_fits(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a Rust program asks for, plain or not, comes back aligned, and
    /// keeps its bytes and alignment through growing and shrinking.
    #[test]
    fn blocks_are_aligned_as_asked_through_realloc() {
        let sizes = [
            1, 7, 8, 12, 16, 24, 40, 48, 100, 1000, 1024, 1200, 4096, 5000, 70_000,
        ];
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in sizes {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is freed once, with the layout it has.
                unsafe {
                    let zeroed = Allocator.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "zeroed {size} align {align}");
                    assert!(
                        std::slice::from_raw_parts(zeroed, size)
                            .iter()
                            .all(|&b| b == 0)
                    );
                    Allocator.dealloc(zeroed, layout);
                    for new_size in [size * 3, size.div_ceil(2)] {
                        let block = Allocator.alloc(layout);
                        assert_eq!(block as usize % align, 0, "size {size} align {align}");
                        std::ptr::write_bytes(block, 0xAB, size);
                        let moved = Allocator.realloc(block, layout, new_size);
                        assert_eq!(
                            moved as usize % align,
                            0,
                            "{size}->{new_size} align {align}"
                        );
                        let kept = std::slice::from_raw_parts(moved, size.min(new_size));
                        assert!(kept.iter().all(|&b| b == 0xAB));
                        Allocator.dealloc(moved, Layout::from_size_align(new_size, align).unwrap());
                    }
                }
            }
        }
    }
}
