//! Renkei Note (在宅療養連携ノート): one shared record per home-care patient for the team
//! around them — home physician, visiting nurse, pharmacist, care manager and more.

pub mod access;
pub mod api;
pub mod app;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod care;
pub mod caseload;
pub mod changes;
pub mod config;
pub mod db;
pub mod discharge;
pub mod docs;
pub mod error;
pub mod fhir;
pub mod flags;
pub mod idempotency;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod notes;
pub mod ops;
pub mod orgs;
pub mod outbound;
pub mod patients;
pub mod push;
pub mod sealing;
pub mod spreadsheet;
pub mod state;
pub mod sync;
pub mod users;
pub mod vocab;
pub mod wards;
pub mod webhooks;
