from advshield.cli import main

main()
