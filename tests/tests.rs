mod audio;
mod capture;
mod cli;
mod http;
mod input;
mod props;
