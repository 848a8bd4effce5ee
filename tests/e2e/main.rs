//! Omen's end-to-end tests: one binary, one module per feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ci;
mod corpus;
mod failures;
mod faults;
mod flaky;
mod gitlab;
mod html;
mod ingest;
mod install;
mod perf;
mod reporters;
mod risk;
mod third_party;
