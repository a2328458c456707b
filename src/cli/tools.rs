//! `streamer completions SHELL` and `streamer man`: they print what a
//! shell or `man` needs, made from the same command line that is parsed
//! ([`super::help::command`]), and run nothing.

use std::io::Write;

use clap::{Args, Subcommand};
use clap_complete::Shell;

use super::help::{self, COMPLETIONS_EXAMPLES, MAN_EXAMPLES};

/// The subcommands that print and read nothing.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Print the completion script of a shell to stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout: streamer(1), or a subcommand's.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManArgs),
}

/// `streamer completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// `streamer man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (file, tcp, kafka) [default: the
    /// page of streamer itself, which lists them].
    #[arg(value_name = "SUBCOMMAND", value_parser = ["file", "tcp", "kafka"])]
    pub subcommand: Option<String>,
}

impl Tool {
    /// Writes the script or page to `out`.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut command = help::command();
        match self {
            Tool::Completions(args) => {
                clap_complete::generate(args.shell, &mut command, "streamer", out);
                Ok(())
            }
            Tool::Man(ManArgs { subcommand: None }) => clap_mangen::Man::new(command).render(out),
            Tool::Man(ManArgs {
                subcommand: Some(name),
            }) => {
                let sub = command
                    .find_subcommand(name)
                    .expect("clap allows only the sources' names")
                    .clone()
                    .name(format!("streamer-{name}"))
                    .bin_name(format!("streamer {name}"))
                    .version(env!("CARGO_PKG_VERSION"));
                clap_mangen::Man::new(sub).render(out)
            }
        }
    }

    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Tool::Completions(_) => "completions",
            Tool::Man(_) => "man",
        }
    }
}
