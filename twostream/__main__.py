from twostream.cli.main import main

main()
