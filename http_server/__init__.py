"""`diffill serve`: the same completer over HTTP for every fill-in-the-middle client
(OpenAI's completions, Mercury's FIM route, llama.cpp's /infill), with step-level batching."""
