from voxspace.cli import main

raise SystemExit(main())
