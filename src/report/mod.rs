//! What the user sees: figures in human units and whole lines on the console.

pub mod console;
pub mod human;
