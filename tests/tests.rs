mod audio;
mod capture;
mod cli;
mod http;
mod input;
mod input_clipboard;
mod props;
