//! Notes of the shared notebook (DESIGN.md §4): vital signs and the NEWS2 score derived from them.

pub mod news2;
pub mod vitals;
