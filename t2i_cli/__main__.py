from t2i_cli.cli import main

main()
