//! A page of memory the master maps before a fork and shares with one worker: the
//! heartbeat's ([`crate::heartbeat`]) and the metrics' ([`crate::metrics`]). Anonymous
//! shared memory, or backed by a file the caller sized; either way zero-filled, so its
//! type must be valid all zero (atomics only).

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// One `T` in a shared mapping, unmapped on drop.
pub struct SharedPage<T> {
    /// The mapping, valid until Drop unmaps it.
    ptr: NonNull<T>,
    /// The mapping's length (a whole number of pages), for `munmap`.
    size: usize,
}

// SAFETY: the mapping is only read through `&T`, and `T: Sync` makes that safe from any
// thread; the pointer stays valid until Drop.
unsafe impl<T: Sync> Send for SharedPage<T> {}

impl<T> SharedPage<T> {
    /// Maps a zeroed `T`: anonymous when `fd` is `None`, else that file (already at least
    /// [`SharedPage::size_for`] bytes long).
    ///
    /// # Safety
    /// `T` must be valid when all its bytes are zero (a `#[repr(C)]` struct of atomics).
    pub unsafe fn map(fd: Option<RawFd>) -> io::Result<SharedPage<T>> {
        let size = Self::size_for();
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh shared mapping of `size` bytes; a file behind it is that long.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw_fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<T>()).ok_or_else(io::Error::last_os_error)?;
        Ok(SharedPage { ptr, size })
    }

    /// The bytes a mapping of one `T` takes: at least a page.
    pub fn size_for() -> usize {
        crate::process::page_size().max(std::mem::size_of::<T>())
    }

    pub fn get(&self) -> &T {
        // SAFETY: mapped for the life of self; `map`'s caller vouched for the zero bytes.
        unsafe { self.ptr.as_ref() }
    }

    /// The raw pointer, for a forked worker's handle that outlives this value in its
    /// own address space (the worker never unmaps: it exits).
    pub fn ptr(&self) -> NonNull<T> {
        self.ptr
    }
}

impl<T> Drop for SharedPage<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping the region this value mapped; no borrow of it outlives self in
        // this process (a worker's handle lives in the worker's own address space).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size) };
    }
}
