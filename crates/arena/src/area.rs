//! BeOS `area_malloc` pools: a heap over one `mmap`ed area (`std` only).
//!
//! [`AreaPool::create`] maps a region (anywhere, near a base hint, or at an exact address
//! without clobbering an existing mapping: `MAP_FIXED_NOREPLACE`), locks it into memory for
//! [`B_FULL_LOCK`] and [`B_CONTIGUOUS`] (`mlock`; a refusal is an error naming
//! `RLIMIT_MEMLOCK`), and serves malloc/calloc/realloc/free from it without ever growing.
//! Dropping the pool (BeOS `delete_pool`) unmaps it.
//!
//! Behaviour is glibc's where BeOS is silent: `free(None)` is a no-op, `realloc(None, n)`
//! allocates, `realloc(p, 0)` frees and returns `None`, a failed realloc leaves `p` intact,
//! `calloc` checks the multiplication, zero-size allocations return unique pointers. A
//! pointer of another pool is detected (range check) and ignored with an error log.

use core::ptr::NonNull;

use mempools_stats::{PoolKind, PoolStats};

use crate::heap::Heap;
use crate::{ArenaError, MallInfo};

/// Haiku's `status_t` values.
pub mod status {
    /// Success.
    pub const B_OK: i32 = 0;
    /// Generic failure.
    pub const B_ERROR: i32 = -1;
    /// Out of memory.
    pub const B_NO_MEMORY: i32 = i32::MIN;
    /// A bad argument.
    pub const B_BAD_VALUE: i32 = i32::MIN + 5;
    /// No such entry (module).
    pub const B_ENTRY_NOT_FOUND: i32 = i32::MIN + 0x6003;
}

/// Any address.
pub const B_ANY_ADDRESS: u32 = 0;
/// Exactly the given address.
pub const B_EXACT_ADDRESS: u32 = 1;
/// At or near the given base address (a hint).
pub const B_BASE_ADDRESS: u32 = 2;
/// Any kernel address (means "anywhere" here).
pub const B_ANY_KERNEL_ADDRESS: u32 = 4;
/// Not locked into memory.
pub const B_NO_LOCK: u32 = 0;
/// Locked lazily (not locked here).
pub const B_LAZY_LOCK: u32 = 1;
/// Locked into memory (`mlock`).
pub const B_FULL_LOCK: u32 = 2;
/// Locked and contiguous (`mlock`; physical contiguity is not available to user space).
pub const B_CONTIGUOUS: u32 = 3;
/// Low memory (not locked here).
pub const B_LOMEM: u32 = 4;
/// Readable.
pub const B_READ_AREA: u32 = 1;
/// Writable (required).
pub const B_WRITE_AREA: u32 = 2;
/// Executable.
pub const B_EXECUTE_AREA: u32 = 4;
/// The module name of `area_malloc`.
pub const B_AREA_MALLOC_MODULE_NAME: &str = "generic/area_malloc/v1";

/// Where to map the area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSpec {
    /// Anywhere (`B_ANY_ADDRESS`, `B_ANY_KERNEL_ADDRESS`).
    Any,
    /// Near this address if the OS agrees (`B_BASE_ADDRESS`).
    Base(usize),
    /// Exactly here, failing rather than replacing an existing mapping (`B_EXACT_ADDRESS`).
    Exact(usize),
}

impl AddressSpec {
    /// The spec for a BeOS constant and an address.
    ///
    /// # Errors
    ///
    /// [`ArenaError::BadSpec`] for an unknown constant.
    pub fn from_raw(spec: u32, addr: usize) -> Result<Self, ArenaError> {
        match spec {
            B_ANY_ADDRESS | B_ANY_KERNEL_ADDRESS => Ok(Self::Any),
            B_BASE_ADDRESS => Ok(Self::Base(addr)),
            B_EXACT_ADDRESS => Ok(Self::Exact(addr)),
            value => Err(ArenaError::BadSpec { what: "address spec", value }),
        }
    }
}

/// A pool over one mapped area. See the [module docs](self).
///
/// ```
/// use mempools_arena::area::{AddressSpec, AreaPool, B_NO_LOCK, B_READ_AREA, B_WRITE_AREA};
///
/// # // Miri cannot call mmap (the area tests are ignored under Miri for the same reason).
/// # if cfg!(miri) { return; }
/// let pool = AreaPool::create("doc.area", AddressSpec::Any, 64 * 1024, B_NO_LOCK, B_READ_AREA | B_WRITE_AREA)
///     .unwrap();
/// let p = pool.malloc(100).unwrap();
/// // SAFETY: `p` came from this pool.
/// let q = unsafe { pool.realloc(Some(p), 200) }.unwrap();
/// // SAFETY: `q` came from this pool.
/// unsafe { pool.free(Some(q)) };
/// ```
pub struct AreaPool {
    heap: Option<Heap<'static>>,
    base: NonNull<u8>,
    len: usize,
    locked: bool,
}

// SAFETY: the mapping is owned by the pool; the heap inside is thread-safe.
unsafe impl Send for AreaPool {}
// SAFETY: every operation goes through the heap's lock.
unsafe impl Sync for AreaPool {}

impl core::fmt::Debug for AreaPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AreaPool")
            .field("base", &self.base)
            .field("len", &self.len)
            .field("locked", &self.locked)
            .finish()
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn memlock_limit() -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) } != 0 {
        return 0;
    }
    if rl.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
        {
            rl.rlim_cur as u64
        }
    }
}

impl AreaPool {
    /// Maps `size` bytes (rounded up to pages) as `address` says, locks them for
    /// [`B_FULL_LOCK`]/[`B_CONTIGUOUS`], and makes a heap of them (registered as kind
    /// `AreaPool` under `name`). The area is always mapped readable (the allocator reads its
    /// own headers); `protection` must include [`B_WRITE_AREA`].
    ///
    /// # Errors
    ///
    /// [`ArenaError::ZeroSize`], [`ArenaError::NotWritable`], [`ArenaError::BadSpec`] for an
    /// unknown lock spec or protection bit, [`ArenaError::MapFailed`],
    /// [`ArenaError::AddressTaken`] when an exact address is unavailable,
    /// [`ArenaError::LockFailed`] (with the RLIMIT_MEMLOCK value) when `mlock` refuses; every
    /// failure logs its reason and leaves nothing mapped.
    pub fn create(
        name: &str,
        address: AddressSpec,
        size: usize,
        lock_spec: u32,
        protection: u32,
    ) -> Result<Self, ArenaError> {
        let r = Self::create_inner(name, address, size, lock_spec, protection);
        if let Err(e) = &r {
            log::error!(target: name, "create_pool failed: {e}");
        }
        r
    }

    fn create_inner(
        name: &str,
        address: AddressSpec,
        size: usize,
        lock_spec: u32,
        protection: u32,
    ) -> Result<Self, ArenaError> {
        if size == 0 {
            return Err(ArenaError::ZeroSize);
        }
        if protection & !(B_READ_AREA | B_WRITE_AREA | B_EXECUTE_AREA) != 0 {
            return Err(ArenaError::BadSpec { what: "protection", value: protection });
        }
        if protection & B_WRITE_AREA == 0 {
            return Err(ArenaError::NotWritable { protection });
        }
        let lock = match lock_spec {
            B_NO_LOCK | B_LAZY_LOCK | B_LOMEM => false,
            B_FULL_LOCK | B_CONTIGUOUS => true,
            value => return Err(ArenaError::BadSpec { what: "lock spec", value }),
        };
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let len =
            mempools_core::layout::align_up(size, page).ok_or(ArenaError::MapFailed { size, errno: 0 })?;
        let mut prot = libc::PROT_READ | libc::PROT_WRITE;
        if protection & B_EXECUTE_AREA != 0 {
            prot |= libc::PROT_EXEC;
        }
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let hint = match address {
            AddressSpec::Any => 0,
            AddressSpec::Base(a) => a,
            AddressSpec::Exact(a) => {
                flags |= libc::MAP_FIXED_NOREPLACE;
                a
            }
        };
        // SAFETY: an anonymous private mapping; MAP_FIXED_NOREPLACE never replaces an existing
        // mapping, and without it the hint is only a hint.
        let p = unsafe { libc::mmap(hint as *mut libc::c_void, len, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            let errno = errno();
            return Err(match address {
                AddressSpec::Exact(addr) => ArenaError::AddressTaken { addr, errno },
                _ => ArenaError::MapFailed { size: len, errno },
            });
        }
        let unmap = |p: *mut libc::c_void| {
            // SAFETY: `p..p+len` is the mapping made above, used by nothing else.
            unsafe { libc::munmap(p, len) };
        };
        if let AddressSpec::Exact(addr) = address {
            // Kernels before 4.17 treat the flag as a hint: check.
            if p as usize != addr {
                unmap(p);
                return Err(ArenaError::AddressTaken { addr, errno: libc::EEXIST });
            }
        }
        if lock {
            // SAFETY: locking our own mapping.
            if unsafe { libc::mlock(p, len) } != 0 {
                let errno = errno();
                unmap(p);
                return Err(ArenaError::LockFailed { size: len, errno, limit: memlock_limit() });
            }
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(ArenaError::MapFailed { size: len, errno: 0 })?;
        // SAFETY: the mapping is ours until `Drop` unmaps it, after dropping the heap.
        let heap = unsafe { Heap::with_kind(name, PoolKind::AreaPool, base, len, true) };
        let heap = match heap {
            Ok(h) => h,
            Err(e) => {
                unmap(p);
                return Err(e);
            }
        };
        log::debug!(target: name, "area pool of {len} bytes at {p:p} (lock {lock})");
        Ok(Self { heap: Some(heap), base, len, locked: lock })
    }

    fn heap(&self) -> &Heap<'static> {
        self.heap.as_ref().expect("the heap lives until drop")
    }

    /// The area's start.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// The area's length (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: an area has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether the area is locked into memory.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Whether `p` points into this pool's area.
    pub fn contains(&self, p: NonNull<u8>) -> bool {
        let a = p.as_ptr() as usize;
        let b = self.base.as_ptr() as usize;
        a >= b && a < b + self.len
    }

    /// `size` bytes (0 gives a unique pointer), or `None` when the pool is full.
    pub fn malloc(&self, size: usize) -> Option<NonNull<u8>> {
        self.heap().malloc(size)
    }

    /// Zeroed memory for `n` items of `size` bytes; `None` on overflow or when full.
    pub fn calloc(&self, n: usize, size: usize) -> Option<NonNull<u8>> {
        self.heap().calloc(n, size)
    }

    /// glibc `realloc`: `None` allocates, size 0 frees and returns `None`, failure returns
    /// `None` with `p` intact.
    ///
    /// # Safety
    /// - `p`, when given, came from this pool and was not freed since.
    pub unsafe fn realloc(&self, p: Option<NonNull<u8>>, size: usize) -> Option<NonNull<u8>> {
        match p {
            Some(q) if size == 0 => {
                // SAFETY: forwarded.
                unsafe { self.free(Some(q)) };
                None
            }
            Some(q) if !self.contains(q) => {
                log::error!(target: self.heap().name(), "realloc: {:p} belongs to another pool; ignored", q.as_ptr());
                None
            }
            // SAFETY: forwarded.
            _ => unsafe { self.heap().realloc(p, size) },
        }
    }

    /// Frees `p`; `None` is a no-op; a pointer of another pool is logged and ignored.
    ///
    /// # Safety
    /// - `p`, when given and inside this pool, came from it and was not freed since.
    pub unsafe fn free(&self, p: Option<NonNull<u8>>) {
        let Some(q) = p else { return };
        if !self.contains(q) {
            log::error!(target: self.heap().name(), "free: {:p} belongs to another pool; ignored", q.as_ptr());
            return;
        }
        // SAFETY: forwarded; the heap also checks the block.
        unsafe { self.heap().free(Some(q)) }
    }

    /// The pool's figures.
    pub fn mallinfo(&self) -> MallInfo {
        self.heap().mallinfo()
    }

    /// Statistics as the registry reports them.
    pub fn stats(&self) -> PoolStats {
        self.heap().stats()
    }

    /// A full consistency check.
    ///
    /// # Errors
    ///
    /// The first corruption found.
    pub fn check(&self) -> Result<(), crate::tlsf::Corruption> {
        self.heap().check()
    }
}

impl Drop for AreaPool {
    fn drop(&mut self) {
        // The heap first: after this, nothing (not even the registry) reads the area.
        drop(self.heap.take());
        // SAFETY: the mapping is ours and unused now.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
