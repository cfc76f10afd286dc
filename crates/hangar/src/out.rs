//! Standard output for reports and listings. `print!` panics when the reader has gone away;
//! `hangar … | head` is a reader that stopped because it had seen enough, so here a closed pipe
//! ends the output quietly and other errors are returned.

use std::io::{ErrorKind, Write};

/// Like `print!`, returning `std::io::Result<()>`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// Like `println!`, returning `std::io::Result<()>`.
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub fn write(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    reader_gone_is_done(std::io::stdout().lock().write_fmt(text))
}

/// The outcome of writing to standard output, with a reader that went away counted as done.
pub fn reader_gone_is_done(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
