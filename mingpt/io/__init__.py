"""
Files in and out (a room below the core): every byte mingpt reads from disk or the network, and every file it writes.

    atomic writes live in mingpt/atomic.py (the core writes files too); this room builds on them:
    download.py     cached, verified, atomic HTTP downloads: the one place mingpt touches the network
    data_files.py   where a known data file comes from (GPT-2's vocabulary among them): $MINGPT_DATA_DIR, else the
                    verified download cache
    hub.py          the Hugging Face Hub's file layout: a model's files from a repo id or a local folder
    safe_load.py    torch.load that never runs a pickle's code (weights_only), with errors that say why
    gpt2_vocab.py   GPT-2's vocabulary files (encoder.json, vocab.bpe): the bytes<->unicode table, reading, checking
    tokenizer_json.py  Hugging Face's tokenizer.json (Llama 3, Qwen2/3, GPT-NeoX...): read, and refused where unknown
    pretrained.py   GPT-2 weights in Hugging Face's layout: from_pretrained, save_pretrained, the name mapping

Nothing here imports the model or the Trainer: `GPT.from_pretrained` calls down into pretrained.py with its own class.
"""
