//! The notebook's routes: `/patients/{id}/notes`, `/notes/{id}` with its amendments, versions
//! and read receipts, `/me/unread`, `/patients/{id}/timeline` and `/patients/{id}/vitals`.
//! Each handler parses, asks `access`, calls the notebook's query functions in one transaction
//! and answers; the SQL stays in `notes`, `reads`, `timeline` and `trends`.

pub mod notes;
pub mod reads;
pub mod timeline;
pub mod vitals;
