//! A bump allocator for guests.
//!
//! Every decision runs in a fresh instance that is thrown away afterwards, so memory is
//! never worth freeing. dlmalloc grows linear memory on its first allocation (two
//! `mprotect`s on the host, several microseconds); a bump pointer starting at
//! `__heap_base` uses the pages the instance already has and grows memory only when an
//! unusually large input needs it.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

const PAGE: usize = 65536;

unsafe extern "C" {
    static __heap_base: u8;
}

pub struct Bump {
    /// (next free byte, end of memory); zero until first use.
    state: UnsafeCell<(usize, usize)>,
}

// SAFETY: wasm32 guests here are single-threaded.
unsafe impl Sync for Bump {}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    state: UnsafeCell::new((0, 0)),
};

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded; no reference to the state outlives this call.
        let state = unsafe { &mut *self.state.get() };
        if state.0 == 0 {
            state.0 = &raw const __heap_base as usize;
            state.1 = wasm32::memory_size(0) * PAGE;
        }
        let start = (state.0 + layout.align() - 1) & !(layout.align() - 1);
        let Some(end) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if end > state.1 {
            let pages = (end - state.1).div_ceil(PAGE);
            if wasm32::memory_grow(0, pages) == usize::MAX {
                return core::ptr::null_mut();
            }
            state.1 += pages * PAGE;
        }
        state.0 = end;
        start as *mut u8
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: single-threaded; no reference to the state outlives this block.
        {
            let state = unsafe { &mut *self.state.get() };
            // The last allocation can grow in place while memory allows.
            if ptr as usize + layout.size() == state.0 && ptr as usize + new_size <= state.1 {
                state.0 = ptr as usize + new_size;
                return ptr;
            }
        }
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(l) => l,
            Err(_) => return core::ptr::null_mut(),
        };
        // SAFETY: delegating to alloc; copying the smaller of the two sizes.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}
