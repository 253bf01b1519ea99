"""
The command line (a room beside the core): ``python -m mingpt.cli`` continues a prompt with a pretrained GPT.

    generate.py   the generate command: load a model (Hub name or local folder), its tokenizer, stream text
    __main__.py   what ``python -m mingpt.cli`` runs
"""
