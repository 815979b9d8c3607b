//! One integration-test binary: the real server, real SQLite, real PostgreSQL, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod consent_revocation;
mod helpers;
mod identification;
mod insurance;
mod layout;
mod maintenance;
mod smtp;

mod alerts;
mod attachments;
mod auth;
mod bench;
mod bench_load;
mod business_days;
mod caseload;
mod caseload_export;
mod changes;
mod contract;
mod digest;
mod discharge;
mod discharge_practice;
mod discharge_templates;
mod docs;
mod errors;
mod fhir;
mod flags;
mod mail;
mod notes;
mod ops;
mod orgs;
mod patients;
mod schema;
mod walkthrough;
mod writer;
