"""Package data: the embedded demo config (`conf`) and the demo site it serves (`_lws_ddir_`)."""
