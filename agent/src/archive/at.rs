//! Descriptor-relative file system calls (Linux `*at`), so that the walk never resolves a
//! path through something swapped in after it was listed.
//!
//! Floor 0: may import nothing of the crate (a leaf).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// What `fstatat(AT_SYMLINK_NOFOLLOW)` says about an entry.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Stat {
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
}

pub fn lstat(dir: &File, name: &OsStr) -> io::Result<Stat> {
    let c = cstr(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir` is an open descriptor, `c` a NUL-terminated string and `st` room for
    // one `stat`, all valid for the call; on success the kernel filled `st`.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat returned 0, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        size: st.st_size.max(0) as u64,
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
    })
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC)`.
pub fn open(dir: &File, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
    let c = cstr(name)?;
    // SAFETY: `dir` is an open descriptor and `c` a NUL-terminated string, both valid
    // for the call.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor we just opened and own nowhere else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `unlinkat(dir, name, flags)`: removes the entry `name` of `dir` (a directory with
/// `AT_REMOVEDIR`), never following a symlink.
pub fn unlink(dir: &File, name: &OsStr, flags: libc::c_int) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: `dir` is an open descriptor and `c` a NUL-terminated string, both valid for
    // the call.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn readlink(dir: &File, name: &OsStr) -> io::Result<PathBuf> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `buf` has `buf.len()` writable bytes; readlinkat writes at most that.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(PathBuf::from(OsString::from_vec(buf)));
        }
        if buf.len() >= 1 << 20 {
            return Err(io::Error::other("symlink target longer than 1 MiB"));
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// The names in an open directory, without `.` and `..`.
pub fn list(dir: &File) -> io::Result<Vec<OsString>> {
    // fdopendir takes ownership of its descriptor: give it a duplicate.
    let dup = dir.try_clone()?;
    let fd = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: `fd` is an open directory descriptor we own; on success the DIR owns it.
    let d = unsafe { libc::fdopendir(fd) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    // SAFETY: `d` is a valid DIR (the duplicate shares the offset: start from 0).
    unsafe { libc::rewinddir(d) };
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir reports errors only through it.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `d` is a valid DIR, used by this thread only.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: a non-null dirent from readdir holds a NUL-terminated name that stays
        // valid until the next readdir on `d`; it is copied right away.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    };
    // SAFETY: `d` is valid and closed exactly once (this also closes `fd`).
    unsafe { libc::closedir(d) };
    result.map(|()| names)
}
