from interface4d.cli import main

raise SystemExit(main())
