//! What the user sees, rendered from what the library returns: figures in human
//! units, whole lines on the console, the clients' summaries, JSON reports,
//! progress bars and plots.

pub mod check;
pub mod console;
pub mod intervals;
pub mod json;
pub mod load;
pub mod narrator;
pub mod plot;
pub mod progress;
pub mod rr;
pub mod server;
pub mod stall;
pub mod uppercase;
