mod capture;
mod cli;
mod http;
