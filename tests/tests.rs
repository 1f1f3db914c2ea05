mod capture;
mod cli;
mod input;
