mod capture;
mod cli;
