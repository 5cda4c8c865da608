//! What the user sees: figures in human units, whole lines on the console, progress
//! bars and plots.

pub mod console;
pub mod human;
pub mod plot;
pub mod progress;
pub mod server;
