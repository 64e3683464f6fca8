//! `vipd import`'s integration tests, in one binary so that CI links one executable: what each
//! directive becomes (`directives`), the sample pairs under tests/samples/ (`samples`), and
//! hostile input that must never panic (`hostile`).

mod directives;
mod health_options;
mod hostile;
mod samples;
