//! Discharge coordination (入退院調整): the task templates a case is built from and the rules
//! that turn them into deadlines (shared/DOMAIN.md, DESIGN.md §4).

pub mod deadlines;
pub mod templates;
