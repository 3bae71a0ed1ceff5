//! The few operating-system calls std does not offer.

use std::path::Path;

/// Free space available to this process on the file system holding `path`
/// (guide §12.6: new mail is refused with a temporary error below a threshold).
#[allow(unsafe_code)]
pub(crate) fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and outlives the call; st is a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field widths differ between targets
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Makes glibc return large freed blocks to the system at once. By default glibc raises
/// its mmap threshold after the first large free, so each thread's arena then keeps the
/// memory of every Argon2 computation it ran (19 MiB each): RSS grew by megabytes per
/// login and never shrank. A fixed threshold keeps large blocks mmap'd (DESIGN §9).
#[allow(unsafe_code)]
pub(crate) fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt only changes allocator parameters; called once at start-up
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_space_of_the_temp_dir_is_known() {
        let free = super::free_space(&std::env::temp_dir());
        assert!(free.is_some_and(|n| n > 0));
        assert_eq!(
            super::free_space(std::path::Path::new("/no/such/dir")),
            None
        );
    }
}
