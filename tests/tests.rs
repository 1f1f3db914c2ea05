mod audio;
mod capture;
mod cli;
