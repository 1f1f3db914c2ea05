mod audio;
mod capture;
mod cli;
mod flood;
mod http;
mod input;
mod input_clipboard;
mod props;
