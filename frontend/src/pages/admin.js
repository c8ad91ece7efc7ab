// The admin page (issue 12). Filled in by its owner.
import "../lib/shell.js";
