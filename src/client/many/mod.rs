//! The engine for many connections at once, and its modes.
//!
//! The engine is what every mode shares: the server's address and how connections
//! to it are made ([`connect`]: sources in turn, a bounded number of attempts at
//! once, a patient connect timeout), the start every connection waits for
//! ([`start`]: connect all, a bounded wait, a worker's gate, a hold), the figures a
//! run keeps and the interval reports cut from them ([`tally`]), failures as data
//! ([`failures`]), and latency histograms with their bounds and exact merging
//! ([`histograms`]). It knows no mode's bytes and renders nothing: interval reports
//! go to an [`IntervalSink`](crate::client::interval::IntervalSink) the caller
//! gives, and reports are data that `report/` renders.
//!
//! The modes: [`load`] (the load generator: a job per connection, repeated with a
//! duration; its report in [`load_report`], merged across worker processes) and
//! [`rr`] (request/response on kept connections, netperf's TCP_RR). A load run
//! past one machine — workers started by any orchestrator at one wall-clock
//! [`instant`], each writing its report, merged exactly — is [`multihost`].

pub mod connect;
pub mod failures;
pub mod histograms;
pub mod instant;
pub mod load;
pub mod load_report;
pub mod multihost;
pub mod rr;
pub mod rr_report;
pub mod start;
pub mod tally;
